//! ICMP and ICMPv6 echo messages (RFC 792, RFC 4443), for `ping`. Both have the same shape;
//! only the type numbers differ:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! |           Identifier          |        Sequence Number        |
//! |     Data ...
//! ```

use super::checksum;

/// The 8 bytes before the data.
pub(crate) const HEADER_LEN: usize = 8;

/// Echo request and reply type numbers of ICMP (IPv4) and ICMPv6.
pub(crate) const ECHO_REQUEST_V4: u8 = 8;
pub(crate) const ECHO_REPLY_V4: u8 = 0;
pub(crate) const ECHO_REQUEST_V6: u8 = 128;
pub(crate) const ECHO_REPLY_V6: u8 = 129;

/// An echo request or reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Echo<'a> {
    pub kind: u8,
    pub code: u8,
    pub id: u16,
    pub seq: u16,
    pub data: &'a [u8],
}

/// An echo request. The ICMP checksum (RFC 1071 over the whole message) is filled in; for
/// ICMPv6 it also covers a pseudo-header with the addresses, which the kernel fills in
/// itself on both raw and datagram ICMPv6 sockets, so it is left zero here.
pub(crate) fn echo_request(v6: bool, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let kind = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    let mut m = Vec::with_capacity(HEADER_LEN + data.len());
    m.extend_from_slice(&[kind, 0, 0, 0]);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    if !v6 {
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// Parses an echo message; `None` when it is too short for the header.
pub(crate) fn parse(message: &[u8]) -> Option<Echo<'_>> {
    let (head, data) = message.split_first_chunk::<HEADER_LEN>()?;
    Some(Echo {
        kind: head[0],
        code: head[1],
        id: u16::from_be_bytes([head[4], head[5]]),
        seq: u16::from_be_bytes([head[6], head[7]]),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_checksum() {
        let m = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(&m[..2], &[8, 0]);
        assert!(checksum::verifies(&m));
        let e = parse(&m).unwrap();
        assert_eq!((e.kind, e.id, e.seq, e.data), (8, 0x1234, 7, &b"abc"[..]));
        assert_eq!(echo_request(true, 1, 2, b"")[0], 128);
        assert!(parse(&m[..7]).is_none());
    }
}
