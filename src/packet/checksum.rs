//! The Internet checksum of RFC 1071, used by the IPv4 header and ICMP: the one's
//! complement of the one's complement sum of the data taken as 16-bit big-endian words.

/// The one's complement sum of `data` as big-endian 16-bit words, folded to 16 bits. An odd
/// last byte counts as the high byte of a word padded with zero (RFC 1071, section 4.1).
pub(crate) fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    // Fold the carries back in ("end-around carry") until the sum fits 16 bits.
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum to put in a header whose checksum field is zero while computing it.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    !ones_sum(data)
}

/// Whether data that includes its checksum field is intact: the sum over all of it,
/// checksum included, is 0xffff (and so its complement is zero).
pub(crate) fn verifies(data: &[u8]) -> bool {
    checksum(data) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3, "Numerical Examples": these bytes sum to ddf2 (one's
        // complement), so the checksum is its complement, 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_sum(&data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn a_captured_ipv4_header() {
        // A real header (UDP, 192.168.0.1 -> 192.168.0.199) whose checksum field holds b861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verifies(&header));
        header[10] = 0;
        header[11] = 0;
        assert_eq!(checksum(&header), 0xb861);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(ones_sum(&[0xab]), 0xab00);
        assert_eq!(ones_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn carries_wrap_around() {
        // ffff + 0001 = 1_0000, folded: 0001.
        assert_eq!(ones_sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
        // Many words: the fold must run until nothing is left to carry.
        assert_eq!(ones_sum(&[0xff; 4096]), 0xffff);
    }
}
