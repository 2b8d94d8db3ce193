//! The IPv4 header (RFC 791), as a raw IPv4 socket hands it to the reader and as the client
//! builds it with IP_HDRINCL:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! ```

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum;

/// A header without options: IHL 5, 20 bytes.
pub(crate) const MIN_HEADER: usize = 20;

/// The fields of a received or built IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ipv4Header {
    pub version: u8,
    /// Header length in 32-bit words (5 to 15).
    pub ihl: u8,
    pub tos: u8,
    /// Header and payload, in bytes.
    pub total_length: u16,
    pub identification: u16,
    /// The three flag bits and the 13-bit fragment offset, as on the wire.
    pub flags_fragment: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: u16,
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
}

/// Why bytes are not an IPv4 packet this parser accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Fewer bytes than the 20 of a minimal header.
    Short(usize),
    /// The version nibble is not 4.
    Version(u8),
    /// IHL below 5 words, or a header longer than the bytes received.
    HeaderLength { ihl: u8, received: usize },
    /// Total length shorter than the header, or longer than the bytes received.
    TotalLength {
        total: u16,
        header: usize,
        received: usize,
    },
    /// The header checksum does not verify.
    Checksum(u16),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::Short(n) => {
                write!(f, "{n} bytes, shorter than a {MIN_HEADER}-byte IPv4 header")
            }
            Malformed::Version(v) => write!(f, "IP version {v}, not 4"),
            Malformed::HeaderLength { ihl, received } => write!(
                f,
                "IHL {ihl} ({} bytes) does not fit a {received}-byte packet (at least 5 words)",
                usize::from(ihl) * 4
            ),
            Malformed::TotalLength {
                total,
                header,
                received,
            } => write!(
                f,
                "total length {total} is below the {header}-byte header or above the {received} \
                 bytes received (truncated)"
            ),
            Malformed::Checksum(c) => write!(f, "header checksum 0x{c:04x} does not verify"),
        }
    }
}

impl std::error::Error for Malformed {}

impl Ipv4Header {
    /// Header length in bytes.
    pub(crate) fn header_len(&self) -> usize {
        usize::from(self.ihl) * 4
    }

    /// A 20-byte header for `payload_len` bytes of `protocol`, its checksum computed.
    pub(crate) fn new(
        source: Ipv4Addr,
        destination: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        identification: u16,
        payload_len: usize,
    ) -> Option<Ipv4Header> {
        let total_length = u16::try_from(MIN_HEADER + payload_len).ok()?;
        let mut header = Ipv4Header {
            version: 4,
            ihl: 5,
            tos: 0,
            total_length,
            identification,
            // DF: loopback never fragments, and a lab should not see fragments anyway.
            flags_fragment: 0x4000,
            ttl,
            protocol,
            checksum: 0,
            source,
            destination,
        };
        header.checksum = checksum::checksum(&header.to_bytes());
        Some(header)
    }

    /// The 20 bytes on the wire, big-endian ("network byte order"), checksum as stored.
    pub(crate) fn to_bytes(self) -> [u8; MIN_HEADER] {
        let mut b = [0u8; MIN_HEADER];
        b[0] = (self.version << 4) | (self.ihl & 0x0f);
        b[1] = self.tos;
        b[2..4].copy_from_slice(&self.total_length.to_be_bytes());
        b[4..6].copy_from_slice(&self.identification.to_be_bytes());
        b[6..8].copy_from_slice(&self.flags_fragment.to_be_bytes());
        b[8] = self.ttl;
        b[9] = self.protocol;
        b[10..12].copy_from_slice(&self.checksum.to_be_bytes());
        b[12..16].copy_from_slice(&self.source.octets());
        b[16..20].copy_from_slice(&self.destination.octets());
        b
    }
}

/// Parses an IPv4 packet: its header, and the payload the total length covers (bytes past
/// it are ignored). Every length is checked against the bytes there are before it is used.
pub(crate) fn parse(packet: &[u8]) -> Result<(Ipv4Header, &[u8]), Malformed> {
    let received = packet.len();
    let Some(fixed) = packet.get(..MIN_HEADER) else {
        return Err(Malformed::Short(received));
    };
    let version = fixed[0] >> 4;
    if version != 4 {
        return Err(Malformed::Version(version));
    }
    let ihl = fixed[0] & 0x0f;
    let header_len = usize::from(ihl) * 4;
    if ihl < 5 || header_len > received {
        return Err(Malformed::HeaderLength { ihl, received });
    }
    let total = u16::from_be_bytes([fixed[2], fixed[3]]);
    if usize::from(total) < header_len || usize::from(total) > received {
        return Err(Malformed::TotalLength {
            total,
            header: header_len,
            received,
        });
    }
    let word = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    let addr = |i: usize| Ipv4Addr::new(fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]);
    let header = Ipv4Header {
        version,
        ihl,
        tos: fixed[1],
        total_length: total,
        identification: word(4),
        flags_fragment: word(6),
        ttl: fixed[8],
        protocol: fixed[9],
        checksum: word(10),
        source: addr(12),
        destination: addr(16),
    };
    // The checksum covers the whole header, options included.
    if !checksum::verifies(&packet[..header_len]) {
        return Err(Malformed::Checksum(header.checksum));
    }
    Ok((header, &packet[header_len..usize::from(total)]))
}

impl fmt::Display for Ipv4Header {
    /// Every field, for `-v`: what the kernel (or IP_HDRINCL) put on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 version {} ihl {} ({} bytes) tos 0x{:02x} total length {} id 0x{:04x} \
             flags/frag 0x{:04x} ttl {} protocol {} checksum 0x{:04x} {} -> {}",
            self.version,
            self.ihl,
            self.header_len(),
            self.tos,
            self.total_length,
            self.identification,
            self.flags_fragment,
            self.ttl,
            self.protocol,
            self.checksum,
            self.source,
            self.destination
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let h = Ipv4Header::new(
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
            253,
            64,
            0x1234,
            payload.len(),
        )
        .unwrap();
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(payload);
        p
    }

    /// Sets a field and fixes the checksum, so only the field under test is wrong.
    fn with(mut p: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
        p[at] = value;
        let header_len = usize::from(p[0] & 0x0f) * 4;
        let end = header_len.clamp(MIN_HEADER, p.len());
        p[10] = 0;
        p[11] = 0;
        let c = checksum::checksum(&p[..end]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn round_trip() {
        let p = packet(b"hello");
        let (h, payload) = parse(&p).unwrap();
        assert_eq!(payload, b"hello");
        assert_eq!((h.version, h.ihl, h.total_length), (4, 5, 25));
        assert_eq!((h.ttl, h.protocol, h.identification), (64, 253, 0x1234));
        assert_eq!(h.source, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(h.destination, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(h.to_bytes(), p[..20]);
    }

    #[test]
    fn bytes_past_total_length_are_not_payload() {
        let mut p = packet(b"ab");
        p.extend_from_slice(b"trailing");
        assert_eq!(parse(&p).unwrap().1, b"ab");
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: one word of options (four NOPs) between the header and the payload.
        let mut p = packet(b"");
        p.splice(20..20, [1, 1, 1, 1]);
        p.extend_from_slice(b"xy");
        p[3] = 26;
        let p = with(p, 0, 0x46);
        let (h, payload) = parse(&p).unwrap();
        assert_eq!((h.header_len(), payload), (24, &b"xy"[..]));
    }

    #[test]
    fn every_prefix_of_a_packet_is_rejected_not_panicked() {
        let p = packet(b"payload");
        for len in 0..p.len() {
            assert!(parse(&p[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        assert_eq!(parse(&[]), Err(Malformed::Short(0)));
        assert_eq!(parse(&p[..19]), Err(Malformed::Short(19)));
        assert!(matches!(
            parse(&p[..24]),
            Err(Malformed::TotalLength {
                total: 27,
                header: 20,
                received: 24
            })
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let p = packet(b"x");
        assert_eq!(parse(&with(p.clone(), 0, 0x65)), Err(Malformed::Version(6)));
        assert!(matches!(
            parse(&with(p.clone(), 0, 0x44)),
            Err(Malformed::HeaderLength { ihl: 4, .. })
        ));
        // IHL 15 (60 bytes) in a 21-byte packet.
        assert!(matches!(
            parse(&with(p.clone(), 0, 0x4f)),
            Err(Malformed::HeaderLength {
                ihl: 15,
                received: 21
            })
        ));
        // Total length 19: shorter than the header itself.
        assert!(matches!(
            parse(&with(p.clone(), 3, 19)),
            Err(Malformed::TotalLength { total: 19, .. })
        ));
        let mut bad = p.clone();
        bad[8] ^= 0xff;
        assert!(matches!(parse(&bad), Err(Malformed::Checksum(_))));
    }

    #[test]
    fn too_long_a_payload_has_no_header() {
        assert!(
            Ipv4Header::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 1, 0, 65_516).is_none()
        );
        assert!(
            Ipv4Header::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 1, 0, 65_515).is_some()
        );
    }
}
