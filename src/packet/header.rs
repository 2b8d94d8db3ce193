//! The netecho header at the start of every raw echo payload. On loopback a raw socket sees
//! every packet of its protocol, requests and replies alike, its own included, so each
//! packet says what it is and whose it is (the README draws it byte by byte):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Magic "NECH" (0x4E 0x45 0x43 0x48)            |
//! |     Type      |   Reserved    |          Identifier           |
//! |                        Sequence Number                        |
//! |                        Message ...
//! ```

use std::fmt;

/// The first four bytes of every netecho raw packet: ASCII "NECH".
pub(crate) const MAGIC: [u8; 4] = *b"NECH";
/// Magic, type, reserved, identifier and sequence number.
pub(crate) const HEADER_LEN: usize = 12;

/// Whether a packet asks or answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request = 1,
    Reply = 2,
}

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    /// Chosen by the client (its process id), so two clients tell their replies apart.
    pub id: u16,
    /// Counts the client's requests; a reply carries its request's number.
    pub seq: u32,
}

/// Why a payload is not a netecho packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotNetecho {
    /// Shorter than the header, or without the magic: someone else's packet.
    NoMagic,
    /// The magic is there but the type is neither request (1) nor reply (2).
    BadType(u8),
}

impl fmt::Display for NotNetecho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotNetecho::NoMagic => f.write_str("no netecho magic \"NECH\""),
            NotNetecho::BadType(t) => {
                write!(f, "netecho type {t} is neither request (1) nor reply (2)")
            }
        }
    }
}

impl Header {
    /// Appends the 12 header bytes to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.kind as u8);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
    }

    /// The header and the message after it.
    pub(crate) fn parse(payload: &[u8]) -> Result<(Header, &[u8]), NotNetecho> {
        let Some((head, message)) = payload.split_first_chunk::<HEADER_LEN>() else {
            return Err(NotNetecho::NoMagic);
        };
        if head[..4] != MAGIC {
            return Err(NotNetecho::NoMagic);
        }
        let kind = match head[4] {
            1 => Kind::Request,
            2 => Kind::Reply,
            other => return Err(NotNetecho::BadType(other)),
        };
        // The reserved byte is ignored on receipt, so a later use of it stays compatible.
        let id = u16::from_be_bytes([head[6], head[7]]);
        let seq = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        Ok((Header { kind, id, seq }, message))
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Request => "request",
            Kind::Reply => "reply",
        };
        write!(f, "netecho {kind} id {} seq {}", self.id, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_by_byte() {
        let mut out = Vec::new();
        Header {
            kind: Kind::Request,
            id: 0x0102,
            seq: 0x0a0b0c0d,
        }
        .write(&mut out);
        assert_eq!(out, b"NECH\x01\x00\x01\x02\x0a\x0b\x0c\x0d");
        out.extend_from_slice(b"hi");
        let (h, msg) = Header::parse(&out).unwrap();
        assert_eq!(
            (h.kind, h.id, h.seq, msg),
            (Kind::Request, 0x0102, 0x0a0b0c0d, &b"hi"[..])
        );
    }

    #[test]
    fn others_packets_are_told_apart() {
        assert_eq!(Header::parse(b""), Err(NotNetecho::NoMagic));
        assert_eq!(Header::parse(b"NECH\x01\x00\x00"), Err(NotNetecho::NoMagic));
        assert_eq!(
            Header::parse(b"NECX\x01\x00\x00\x01\x00\x00\x00\x01"),
            Err(NotNetecho::NoMagic)
        );
        assert_eq!(
            Header::parse(b"NECH\x07\x00\x00\x01\x00\x00\x00\x01"),
            Err(NotNetecho::BadType(7))
        );
        let (h, msg) = Header::parse(b"NECH\x02\xff\x00\x01\x00\x00\x00\x01").unwrap();
        assert_eq!((h.kind, msg), (Kind::Reply, &b""[..]));
    }
}
