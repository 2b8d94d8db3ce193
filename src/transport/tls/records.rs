//! The records a connection sends and receives, read from their 5-byte headers (type,
//! version, length): where each ends, so a server knows when a record is under way (its
//! plaintext comes only once the record is whole, and a peer trickling one must not hold
//! the connection), and for `--explain` each record and the handshake messages still in
//! cleartext (the hellos; under TLS 1.2 the certificate and key exchange too).

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether an application_data record was narrated yet: the first says what it hides, once
/// in a process; the rest, a dozen in one short exchange, just `encrypted`.
static TOLD: AtomicBool = AtomicBool::new(false);

/// Where a direction of a connection is within its records, across reads.
#[derive(Default)]
pub(crate) struct Records {
    /// Bytes of a header seen in an earlier read (a header may straddle two reads).
    header: Vec<u8>,
    /// Bytes of the current record's body still to come.
    left: usize,
    /// Whether a ChangeCipherSpec went by in this direction: TLS 1.2 encrypts after it.
    encrypted: bool,
}

impl Records {
    /// Narrates each record that starts in `bytes` (`way`: "sending" or "received").
    pub(crate) fn narrate(&mut self, way: &str, bytes: &[u8]) {
        self.pass(Some(way), bytes);
    }

    /// Follows the records in `bytes`, narrating each one that starts when `way` is given;
    /// returns how many records ended in them.
    pub(crate) fn pass(&mut self, way: Option<&str>, mut bytes: &[u8]) -> usize {
        let mut ended = 0;
        while !bytes.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(bytes.len());
                self.left -= skip;
                bytes = &bytes[skip..];
                ended += usize::from(self.left == 0);
                continue;
            }
            let need = 5 - self.header.len();
            let take = need.min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() < 5 {
                break;
            }
            let kind = self.header[0];
            let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            if let Some(way) = way {
                let version = u16::from_be_bytes([self.header[1], self.header[2]]);
                let what = self.contents(kind, &bytes[..len.min(bytes.len())]);
                crate::explain::line(format_args!(
                    "  tls {way} record: {} ({kind}), {}, {}{what}",
                    kind_name(kind),
                    version_name(version),
                    crate::units::count(len, "byte"),
                ));
            }
            self.header.clear();
            self.left = len;
            ended += usize::from(len == 0);
            if kind == 20 {
                self.encrypted = true;
            }
        }
        ended
    }

    /// Whether a record has begun and not ended: its header or its body is still coming.
    pub(crate) fn under_way(&self) -> bool {
        self.left > 0 || !self.header.is_empty()
    }

    /// What a record's body shows in cleartext: the handshake message's type.
    fn contents(&self, kind: u8, body: &[u8]) -> String {
        match (kind, body.first()) {
            (22, Some(_)) if !self.encrypted => format!(": {}", handshake_messages(body)),
            (22, _) => ": encrypted handshake message".into(),
            (23, _) => match TOLD.swap(true, Ordering::Relaxed) {
                false => {
                    ": encrypted (application data; TLS 1.3 hides its handshake here too)".into()
                }
                true => ": encrypted".into(),
            },
            (21, Some(&level)) if !self.encrypted => {
                format!(
                    ": {} alert {}",
                    if level == 2 { "fatal" } else { "warning" },
                    body.get(1).copied().unwrap_or(0)
                )
            }
            _ => String::new(),
        }
    }
}

/// The handshake messages a cleartext record's body (as far as this read has it) holds:
/// TLS 1.2 puts the server's hello, certificate and key exchange in one record.
fn handshake_messages(body: &[u8]) -> String {
    let mut names = Vec::new();
    let mut rest = body;
    while let [t, a, b, c, ..] = *rest {
        names.push(handshake_name(t));
        let len = u32::from_be_bytes([0, a, b, c]) as usize;
        match rest.get(4 + len..) {
            Some(after) => rest = after,
            None => break,
        }
    }
    names.join(", ")
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        20 => "change_cipher_spec",
        21 => "alert",
        22 => "handshake",
        23 => "application_data",
        _ => "not a TLS record",
    }
}

fn version_name(version: u16) -> String {
    match version {
        0x0301 => "TLS 1.0 on the record".into(),
        0x0303 => "TLS 1.2 on the record".into(),
        v => format!("version {v:#06x}"),
    }
}

fn handshake_name(t: u8) -> &'static str {
    match t {
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        _ => "handshake message",
    }
}

#[cfg(test)]
mod tests {
    use super::Records;

    /// A record cut anywhere, header included, is under way until its last byte, and
    /// counts as ended once, in the read that brought that byte.
    #[test]
    fn a_record_is_under_way_from_its_first_byte_to_its_last() {
        let mut wire = vec![23, 3, 3, 0, 4, 1, 2, 3, 4];
        wire.extend_from_slice(&[21, 3, 3, 0, 0]);
        for cut in 1..wire.len() {
            let mut records = Records::default();
            let first = records.pass(None, &wire[..cut]);
            assert_eq!(records.under_way(), cut != 9, "cut at {cut}");
            let second = records.pass(None, &wire[cut..]);
            assert_eq!(first + second, 2, "cut at {cut}");
            assert!(!records.under_way(), "cut at {cut}");
        }
        let mut records = Records::default();
        for byte in &wire[..8] {
            assert_eq!(records.pass(None, std::slice::from_ref(byte)), 0);
            assert!(records.under_way());
        }
        assert_eq!(records.pass(None, &wire[8..9]), 1);
        assert!(!records.under_way());
    }
}
