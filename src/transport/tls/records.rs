//! `--explain` for TLS: the records a connection sends and receives, read from their
//! 5-byte headers (type, version, length), and the handshake messages still in
//! cleartext (the hellos; under TLS 1.2 the certificate and key exchange too).

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
    pub(crate) fn narrate(&mut self, way: &str, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(bytes.len());
                self.left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let need = 5 - self.header.len();
            let take = need.min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() < 5 {
                return;
            }
            let kind = self.header[0];
            let version = u16::from_be_bytes([self.header[1], self.header[2]]);
            let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            self.header.clear();
            self.left = len;
            let what = self.contents(kind, &bytes[..len.min(bytes.len())]);
            crate::explain::line(format_args!(
                "  tls {way} record: {} ({kind}), {}, {len} bytes{what}",
                kind_name(kind),
                version_name(version),
            ));
            if kind == 20 {
                self.encrypted = true;
            }
        }
    }

    /// What a record's body shows in cleartext: the handshake message's type.
    fn contents(&self, kind: u8, body: &[u8]) -> String {
        match (kind, body.first()) {
            (22, Some(_)) if !self.encrypted => format!(": {}", handshake_messages(body)),
            (22, _) => ": encrypted handshake message".into(),
            (23, _) => {
                ": encrypted (application data; TLS 1.3 hides its handshake here too)".into()
            }
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
