//! The packets of netecho's file transfer over datagrams, in the spirit of TFTP (RFC 1350)
//! with a window (RFC 7440). Every integer is big-endian; the README draws each packet.
//!
//! ```text
//! 1 READ   window u16, block size u16, nonce u64, name (UTF-8), NUL padding to 32 bytes
//! 2 WRITE  window u16, block size u16, size u64, nonce u64, name, NUL padding to 32 bytes
//! 3 DATA   block u32 (from 1), data (block size bytes; a shorter block is the last)
//! 4 ACK    block u32: every block up to and including it arrived (0: ready, none yet),
//!          then (version 2 only) a SACK bitmap of 1 to 128 bytes: bit k (byte k/8, value
//!          1 << k%8) set means block + 2 + k arrived too
//! 5 ERROR  message (UTF-8)
//! 6 FIN    size u64, hash (32 bytes), blocks sent u64, blocks sent again u64
//! 7 FINACK verdict u8: 0 the hash matched, 1 it did not
//! 8 HELLO  nonce u64 (the request's), token u64 (the server's): 18 bytes
//! 9 READ   as 1, version 2        10 WRITE  as 2, version 2
//! 11 PROOF  token u64 (from the server's COOKIE), then the READ or WRITE as first sent
//! 12 COOKIE as HELLO, from the well-known socket: the token to send back in a PROOF
//! ```
//!
//! The request's type sets the version for the whole transfer: version 1 (types 1 and 2)
//! ends with SHA-256 and acknowledges cumulatively; version 2 (types 9 and 10) ends with
//! BLAKE3 and its receiver adds a SACK bitmap while blocks are missing, so the sender sends
//! again only the holes. A server of version 1 ignores a request of version 2, so the
//! client says so when no answer comes.
//!
//! A request is padded so that the server's one answer to an address not yet proven, the
//! HELLO, is never larger than the request that caused it: a spoofed request reflects no
//! more bytes than it took to send. The server's well-known socket answers a READ or WRITE
//! with a COOKIE (a HELLO's size) and keeps nothing (its token is made from the source's
//! address); the client sends the request again inside a PROOF with that token, and only a
//! PROOF whose token matches its source starts a transfer. That transfer's own socket then
//! sends a HELLO of its own, which names the transfer's port, and waits for it to come back.

use super::hash::Algo;

/// The protocol version a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// SHA-256, cumulative ACKs.
    V1,
    /// BLAKE3, cumulative ACKs with a SACK bitmap.
    V2,
}

impl Version {
    pub(crate) fn hash(self) -> Algo {
        match self {
            Version::V1 => Algo::Sha256,
            Version::V2 => Algo::Blake3,
        }
    }

    /// The receiver tells the sender which blocks past a gap it holds.
    pub(crate) fn sack(self) -> bool {
        self == Version::V2
    }

    /// The type numbers of its READ and WRITE.
    fn request_types(self) -> (u16, u16) {
        match self {
            Version::V1 => (1, 2),
            Version::V2 => (9, 10),
        }
    }
}

/// The most bytes of SACK bitmap an ACK carries: 1024 blocks, the largest window.
pub(crate) const MAX_SACK_BYTES: usize = 128;

/// A decoded packet, borrowing from the datagram it came in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    Read {
        version: Version,
        window: u16,
        block_size: u16,
        nonce: u64,
        name: &'a str,
    },
    Write {
        version: Version,
        window: u16,
        block_size: u16,
        size: u64,
        nonce: u64,
        name: &'a str,
    },
    Data {
        block: u32,
        data: &'a [u8],
    },
    Ack {
        block: u32,
    },
    /// An ACK with a SACK bitmap (never empty) of the blocks past `block + 1` that arrived.
    Sack {
        block: u32,
        bits: &'a [u8],
    },
    Error {
        message: &'a str,
    },
    Fin {
        size: u64,
        digest: [u8; 32],
        blocks: u64,
        retransmitted: u64,
    },
    FinAck {
        ok: bool,
    },
    /// The server's challenge from its transfer socket, and the client's proof that it
    /// lives at the address the request came from: the same packet sent back.
    Hello {
        nonce: u64,
        token: u64,
    },
    /// The well-known socket's answer to a request: its nonce, and a token for the PROOF.
    Cookie {
        nonce: u64,
        token: u64,
    },
    /// A request sent again with the token of the well-known socket's COOKIE.
    Proof {
        token: u64,
        request: &'a [u8],
    },
}

/// Bytes before a DATA packet's data.
pub(crate) const DATA_HEADER: usize = 6;
/// The shortest request a server answers; netecho's client pads READ and WRITE to it.
pub(crate) const MIN_REQUEST: usize = 32;
/// A HELLO's size: never more than a request's.
pub(crate) const HELLO_LEN: usize = 18;
const _: () = assert!(HELLO_LEN <= MIN_REQUEST);

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A request's name: UTF-8 up to the padding (NUL bytes to the end, which a name never
/// holds).
fn unpadded(b: &[u8]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    if b[end..].iter().any(|&c| c != 0) {
        return None;
    }
    std::str::from_utf8(&b[..end]).ok()
}

/// NUL bytes after a request that began at `start`, up to [`MIN_REQUEST`].
fn pad(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    out.resize(out.len() + MIN_REQUEST.saturating_sub(len), 0);
}

/// A packet of its type and 64-bit words (HELLO, COOKIE: nonce and token).
fn words(out: &mut Vec<u8>, kind: u16, words: &[u64]) {
    out.extend_from_slice(&kind.to_be_bytes());
    for word in words {
        out.extend_from_slice(&word.to_be_bytes());
    }
}

impl<'a> Packet<'a> {
    /// Parses a datagram; `None` for anything malformed (which is then ignored).
    pub(crate) fn decode(b: &'a [u8]) -> Option<Packet<'a>> {
        let text = |from: usize| std::str::from_utf8(b.get(from..)?).ok();
        let version = |kind: u16| if kind < 9 { Version::V1 } else { Version::V2 };
        Some(match u16_at(b, 0)? {
            kind @ (1 | 9) => Packet::Read {
                version: version(kind),
                window: u16_at(b, 2)?,
                block_size: u16_at(b, 4)?,
                nonce: u64_at(b, 6)?,
                name: unpadded(b.get(14..)?)?,
            },
            kind @ (2 | 10) => Packet::Write {
                version: version(kind),
                window: u16_at(b, 2)?,
                block_size: u16_at(b, 4)?,
                size: u64_at(b, 6)?,
                nonce: u64_at(b, 14)?,
                name: unpadded(b.get(22..)?)?,
            },
            3 => Packet::Data {
                block: u32_at(b, 2)?,
                data: b.get(DATA_HEADER..)?,
            },
            4 if b.len() == 6 => Packet::Ack {
                block: u32_at(b, 2)?,
            },
            4 if b.len() <= 6 + MAX_SACK_BYTES => Packet::Sack {
                block: u32_at(b, 2)?,
                bits: b.get(6..)?,
            },
            5 => Packet::Error { message: text(2)? },
            6 if b.len() == 58 => Packet::Fin {
                size: u64_at(b, 2)?,
                digest: b.get(10..42)?.try_into().ok()?,
                blocks: u64_at(b, 42)?,
                retransmitted: u64_at(b, 50)?,
            },
            7 if b.len() == 3 => Packet::FinAck { ok: b[2] == 0 },
            8 if b.len() == HELLO_LEN => Packet::Hello {
                nonce: u64_at(b, 2)?,
                token: u64_at(b, 10)?,
            },
            12 if b.len() == HELLO_LEN => Packet::Cookie {
                nonce: u64_at(b, 2)?,
                token: u64_at(b, 10)?,
            },
            11 => Packet::Proof {
                token: u64_at(b, 2)?,
                request: b.get(10..)?,
            },
            _ => return None,
        })
    }

    /// Appends the packet's bytes to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Read {
                version,
                window,
                block_size,
                nonce,
                name,
            } => {
                let start = out.len();
                out.extend_from_slice(&version.request_types().0.to_be_bytes());
                out.extend_from_slice(&window.to_be_bytes());
                out.extend_from_slice(&block_size.to_be_bytes());
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(name.as_bytes());
                pad(out, start);
            }
            Packet::Write {
                version,
                window,
                block_size,
                size,
                nonce,
                name,
            } => {
                let start = out.len();
                out.extend_from_slice(&version.request_types().1.to_be_bytes());
                out.extend_from_slice(&window.to_be_bytes());
                out.extend_from_slice(&block_size.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(name.as_bytes());
                pad(out, start);
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
            Packet::Sack { block, bits } => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(bits);
            }
            Packet::Error { message } => {
                out.extend_from_slice(&5u16.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
            Packet::Fin {
                size,
                digest,
                blocks,
                retransmitted,
            } => {
                out.extend_from_slice(&6u16.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(digest);
                out.extend_from_slice(&blocks.to_be_bytes());
                out.extend_from_slice(&retransmitted.to_be_bytes());
            }
            Packet::FinAck { ok } => {
                out.extend_from_slice(&7u16.to_be_bytes());
                out.push(u8::from(!ok));
            }
            Packet::Hello { nonce, token } => words(out, 8, &[*nonce, *token]),
            Packet::Cookie { nonce, token } => words(out, 12, &[*nonce, *token]),
            Packet::Proof { token, request } => {
                out.extend_from_slice(&11u16.to_be_bytes());
                out.extend_from_slice(&token.to_be_bytes());
                out.extend_from_slice(request);
            }
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_round_trips() {
        let packets = [
            Packet::Read {
                version: Version::V1,
                window: 8,
                block_size: 1408,
                nonce: 42,
                name: "a/b.txt",
            },
            Packet::Read {
                version: Version::V2,
                window: 8,
                block_size: 1408,
                nonce: 42,
                name: "a/b.txt",
            },
            Packet::Read {
                version: Version::V1,
                window: 8,
                block_size: 1408,
                nonce: 42,
                name: "a name longer than the padding, so none is added",
            },
            Packet::Write {
                version: Version::V1,
                window: 1,
                block_size: 512,
                size: 1 << 33,
                nonce: u64::MAX,
                name: "x",
            },
            Packet::Write {
                version: Version::V2,
                window: 1,
                block_size: 512,
                size: 1 << 33,
                nonce: u64::MAX,
                name: "x",
            },
            Packet::Sack {
                block: 3,
                bits: &[0b101, 0, 1],
            },
            Packet::Sack {
                block: 0,
                bits: &[0xff; MAX_SACK_BYTES],
            },
            Packet::Hello { nonce: 1, token: 2 },
            Packet::Cookie { nonce: 4, token: 5 },
            Packet::Proof {
                token: 3,
                request: b"\x00\x09\x00\x08\x05\x80 and the rest",
            },
            Packet::Data {
                block: 7,
                data: b"hello",
            },
            Packet::Data {
                block: 9,
                data: b"",
            },
            Packet::Ack { block: 0 },
            Packet::Error {
                message: "no such file",
            },
            Packet::Fin {
                size: 5,
                digest: [7; 32],
                blocks: 3,
                retransmitted: 1,
            },
            Packet::FinAck { ok: false },
        ];
        for p in packets {
            assert_eq!(Packet::decode(&p.to_vec()), Some(p));
        }
    }

    #[test]
    fn malformed_packets_are_none_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x04\x00",
            b"\x00\x09abc",
            b"\x00\x06short",
            b"\x00\x01\x00",
        ] {
            assert_eq!(Packet::decode(bad), None, "{bad:?}");
        }
        let mut too_long_sack = Packet::Ack { block: 1 }.to_vec();
        too_long_sack.resize(7 + MAX_SACK_BYTES, 0xff);
        assert_eq!(Packet::decode(&too_long_sack), None);
        let mut invalid_utf8 = Packet::Read {
            version: Version::V1,
            window: 1,
            block_size: 1,
            nonce: 0,
            name: "\u{e9}",
        }
        .to_vec();
        invalid_utf8[15] = 0xff;
        assert_eq!(Packet::decode(&invalid_utf8), None);
        let mut after_padding = invalid_utf8.clone();
        after_padding[15] = 0;
        *after_padding.last_mut().unwrap() = b'x';
        assert_eq!(Packet::decode(&after_padding), None);
    }

    #[test]
    fn a_hello_is_never_larger_than_a_request() {
        for name in ["", "x", "a/b.txt"] {
            let read = Packet::Read {
                version: Version::V2,
                window: 1,
                block_size: 1,
                nonce: 0,
                name,
            };
            let write = Packet::Write {
                version: Version::V2,
                window: 1,
                block_size: 1,
                size: 0,
                nonce: 0,
                name,
            };
            for request in [read, write] {
                assert!(request.to_vec().len() >= MIN_REQUEST, "{request:?}");
            }
        }
        let hello = Packet::Hello { nonce: 0, token: 0 }.to_vec();
        assert_eq!(hello.len(), HELLO_LEN);
    }
}
