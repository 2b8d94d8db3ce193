//! A property test of the parsers over many generated inputs: random bytes, and valid
//! packets truncated, extended or with one byte changed. Whatever the input, the parsers
//! return (never panic), and whatever they accept is consistent with the bytes given.
//! A small deterministic PRNG keeps it reproducible and needs no extra crate.

use std::net::Ipv4Addr;

use super::header::{HEADER_LEN, Header, Kind};
use super::{checksum, icmp, ipv4};

/// Inputs generated per run: enough to hit every branch many times, quick in debug builds.
const CASES: usize = 20_000;

/// xorshift64* (Vigna): a few lines, good enough to spread test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A valid IPv4 packet carrying a netecho request, with random fields and message.
fn valid_packet(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let len = rng.below(64);
    let message = rng.bytes(len);
    let mut payload = Vec::new();
    let header = Header {
        kind: Kind::Request,
        id: rng.next() as u16,
        seq: rng.next() as u32,
    };
    header.write(&mut payload);
    payload.extend_from_slice(&message);
    let ip = ipv4::Ipv4Header::new(
        Ipv4Addr::from(rng.next() as u32),
        Ipv4Addr::from(rng.next() as u32),
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u16,
        payload.len(),
    )
    .expect("small payload");
    let mut packet = ip.to_bytes().to_vec();
    packet.extend_from_slice(&payload);
    (packet, message)
}

/// What any accepted packet must satisfy, whatever bytes it came from.
fn check_accepted(input: &[u8]) {
    let Ok((h, payload)) = ipv4::parse(input) else {
        return;
    };
    assert_eq!(h.version, 4);
    assert!(h.ihl >= 5);
    assert!(usize::from(h.total_length) <= input.len());
    assert_eq!(payload.len(), usize::from(h.total_length) - h.header_len());
    assert!(checksum::verifies(&input[..h.header_len()]));
    if let Ok((nh, message)) = Header::parse(payload) {
        assert_eq!(message.len(), payload.len() - HEADER_LEN);
        assert!(matches!(nh.kind, Kind::Request | Kind::Reply));
    }
}

#[test]
fn parsers_never_panic_and_accept_only_what_is_consistent() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for case in 0..CASES {
        let input = match case % 4 {
            // Random bytes: almost all rejected, at every step of the parser.
            0 => {
                let len = rng.below(80);
                rng.bytes(len)
            }
            // A valid packet cut short anywhere: always rejected (it claims more bytes).
            1 => {
                let (mut p, _) = valid_packet(&mut rng);
                let keep = rng.below(p.len());
                p.truncate(keep);
                assert!(ipv4::parse(&p).is_err(), "a truncated packet was accepted");
                p
            }
            // A valid packet with one byte changed: the header checksum catches changes to
            // the header; changes to the payload are the netecho header's business.
            2 => {
                let (mut p, _) = valid_packet(&mut rng);
                let at = rng.below(p.len());
                p[at] ^= (rng.below(255) + 1) as u8;
                p
            }
            // A valid packet, maybe with trailing bytes: accepted, message intact.
            _ => {
                let (mut p, message) = valid_packet(&mut rng);
                let extra = rng.below(8);
                p.extend(rng.bytes(extra));
                let (_, payload) = ipv4::parse(&p).expect("valid packet rejected");
                let (h, got) = Header::parse(payload).expect("netecho header rejected");
                assert_eq!((h.kind, got), (Kind::Request, &message[..]));
                accepted += 1;
                p
            }
        };
        check_accepted(&input);
        // The other parsers see every input too.
        let _ = Header::parse(&input);
        let _ = icmp::parse(&input);
        let _ = checksum::checksum(&input);
    }
    assert_eq!(accepted, CASES / 4);
}
