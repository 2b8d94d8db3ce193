//! TLS over a connected stream or seqpacket socket (rustls): certificates and
//! configurations (`cert.rs`, shared with QUIC), the session a [`super::Conn`] carries
//! (`session.rs`), and the records `--explain` narrates (`records.rs`).
//!
//! A connection with a session reads and writes plaintext through it; the message rules
//! above (a bare stream, or frames) apply to that plaintext unchanged, and TLS over
//! seqpacket is a stream of records like any other (rustls does not keep boundaries).

pub(crate) mod cert;
pub(crate) mod pending;
mod records;
pub(crate) mod session;

use std::fmt;
use std::sync::Arc;

use anyhow::Result;

pub(crate) use session::Session;

/// A side's TLS, built once from its [`cert::TlsConfig`] and shared by every connection.
#[derive(Clone)]
pub(crate) enum TlsEnd {
    /// A listener's: each accepted connection gets a server session.
    Server(cert::ServerTls),
    /// A client's: each connection gets a client session, handshaking right after connect.
    Client(Arc<ClientTls>),
}

/// A client's configuration and the settings the server name is chosen from.
pub(crate) struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    pub tls: cert::TlsConfig,
}

impl TlsEnd {
    /// A server's, with a certificate made for `names` when none was given.
    pub(crate) fn server(tls: &cert::TlsConfig, names: &[String]) -> Result<TlsEnd> {
        Ok(TlsEnd::Server(cert::server_config(tls, names)?))
    }

    pub(crate) fn client(tls: &cert::TlsConfig) -> Result<TlsEnd> {
        Ok(TlsEnd::Client(Arc::new(ClientTls {
            config: cert::client_config(tls)?,
            tls: tls.clone(),
        })))
    }

    /// The server's certificate fingerprint, and whether it was made at start.
    pub(crate) fn fingerprint(&self) -> Option<(cert::Fingerprint, bool)> {
        match self {
            TlsEnd::Server(s) => Some((s.fingerprint, s.made)),
            TlsEnd::Client(_) => None,
        }
    }
}

impl fmt::Debug for TlsEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsEnd::Server(s) => write!(f, "TlsEnd::Server({})", s.fingerprint),
            TlsEnd::Client(c) => write!(f, "TlsEnd::Client({:?})", c.tls),
        }
    }
}

/// A failed handshake or record, as one line of advice for the side that saw it.
pub(crate) fn describe_error(e: &rustls::Error, client: bool) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E, InvalidMessage as M};
    let peer = if client { "server" } else { "client" };
    match e {
        // A record header that is none (no content type, no TLS version): plaintext.
        E::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion) if client => {
            "the server did not answer in TLS (a plaintext server? leave out --tls)".into()
        }
        E::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion) => {
            "not TLS: the client's bytes are no TLS records (a plaintext client on a TLS port?)"
                .into()
        }
        E::InvalidMessage(M::HandshakePayloadTooLarge | M::CertificatePayloadTooLarge) => {
            format!(
                "the {peer}'s TLS handshake message was too large (a certificate chain too long?)"
            )
        }
        E::InvalidMessage(kind) => format!("the {peer} sent a malformed TLS message ({kind:?})"),
        E::InappropriateHandshakeMessage { .. } if client => {
            "the server sent a ClientHello back: an echo server without TLS? (leave out --tls)"
                .into()
        }
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the server's certificate is not signed by a CA this client trusts; give --ca FILE, \
             or --pin SHA256 with the fingerprint the server printed"
                .into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired; renew it (or --pin it to accept it as it is)"
                .into()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet (check both clocks)".into()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server's certificate is for another name; give --server-name NAME, or --pin".into()
        }
        E::InvalidCertificate(C::Other(e)) => match e.to_string() {
            pin if pin.starts_with("the server's certificate") => pin,
            other if other.contains("CaUsedAsEndEntity") => {
                "the server presents a CA certificate as its own (CA:TRUE); give it one the CA \
                 signed, or trust exactly this one with --pin"
                    .into()
            }
            other => format!("the server's certificate was refused: {other}"),
        },
        E::General(text) => text.clone(),
        E::AlertReceived(A::UnknownCA | A::BadCertificate | A::CertificateUnknown) => {
            "the client does not trust this server's certificate (it answered with an alert)".into()
        }
        E::AlertReceived(A::ProtocolVersion) | E::PeerIncompatible(_) => format!(
            "no TLS version or cipher in common ({e}); both sides need the same --tls-version"
        ),
        E::NoApplicationProtocol => {
            "the peer offered no ALPN protocol netecho speaks (\"netecho\")".into()
        }
        E::AlertReceived(alert) => format!("the peer ended the TLS session: alert {alert:?}"),
        other => format!("TLS: {other}"),
    }
}
