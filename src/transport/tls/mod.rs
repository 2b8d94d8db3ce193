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
    /// The certificate checks `config` makes (its witness's inner verifier), for a
    /// connection that keeps their refusal.
    pub verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    pub tls: cert::TlsConfig,
}

impl TlsEnd {
    /// A server's, with a certificate made for `names` when none was given; a given one
    /// that does not name `served` is warned about.
    pub(crate) fn server(
        tls: &cert::TlsConfig,
        names: &[String],
        served: Option<&str>,
    ) -> Result<TlsEnd> {
        Ok(TlsEnd::Server(cert::server_config(tls, names, served)?))
    }

    pub(crate) fn client(tls: &cert::TlsConfig) -> Result<TlsEnd> {
        let verifier = cert::verifier(tls)?;
        Ok(TlsEnd::Client(Arc::new(ClientTls {
            config: cert::client_config(tls, &verifier)?,
            verifier,
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

/// What a handshake settled, as `-v` prints it: `protocol` (version and cipher suite),
/// the ALPN protocol, the peer's certificate and the fingerprint a client may pin.
pub(crate) fn settled_line(protocol: &str, alpn: Option<&[u8]>, peer: Option<&[u8]>) -> String {
    let alpn = alpn.map_or("none".to_string(), |p| {
        String::from_utf8_lossy(p).into_owned()
    });
    let subject = match peer {
        Some(der) => format!(
            "peer certificate {} (SHA-256 {})",
            cert::subject(der).unwrap_or_else(|| "(unreadable subject)".into()),
            cert::Fingerprint::of(der)
        ),
        None => "no peer certificate".to_string(),
    };
    format!("{protocol}, ALPN {alpn}, {subject}")
}

/// A failed handshake or record, as one line of advice for the side that saw it.
pub(crate) fn describe_error(e: &rustls::Error, client: bool) -> String {
    use rustls::{CertificateError as C, Error as E, InvalidMessage as M};
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
        E::InvalidCertificate(C::ExpiredContext { not_after, .. }) => format!(
            "the server's certificate expired on {}; renew it (or --pin it to accept it as \
             it is)",
            cert::date(not_after.as_secs())
        ),
        E::InvalidCertificate(C::Expired) => {
            "the server's certificate has expired; renew it (or --pin it to accept it as it is)"
                .into()
        }
        E::InvalidCertificate(C::NotValidYetContext { not_before, .. }) => format!(
            "the server's certificate is not valid before {} (check both clocks)",
            cert::date(not_before.as_secs())
        ),
        E::InvalidCertificate(C::NotValidYet) => {
            "the server's certificate is not valid yet (check both clocks)".into()
        }
        E::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => for_another_name(&expected.to_str(), presented),
        E::InvalidCertificate(C::NotValidForName) => {
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
        E::AlertReceived(alert) => alert_received(*alert, client),
        E::PeerIncompatible(_) => format!(
            "no TLS version or cipher in common ({e}); both sides need the same --tls-version"
        ),
        E::NoApplicationProtocol if client => {
            "the server chose an ALPN protocol netecho did not offer (netecho offers only \
             \"netecho\")"
                .into()
        }
        E::NoApplicationProtocol => no_alpn_from_client(),
        other => format!("TLS: {other}"),
    }
}

/// A server's refusal of a client for ALPN, naming what it offered: asked on the thread
/// that handled the ClientHello, which noted it ([`cert::offered_alpn`]).
fn no_alpn_from_client() -> String {
    match cert::offered_alpn() {
        Some(offered) => format!(
            "the client offered ALPN {offered}, none of them netecho's: a client must offer \
             \"netecho\" or no ALPN at all (curl --no-alpn, openssl s_client -alpn netecho)"
        ),
        None => NO_ALPN_FROM_CLIENT.into(),
    }
}

/// What a server says when a client offers ALPN protocols, none of them netecho's.
const NO_ALPN_FROM_CLIENT: &str = "the client offered no ALPN protocol netecho speaks: a \
     client must offer \"netecho\" or no ALPN at all (curl --no-alpn, openssl s_client -alpn \
     netecho)";

/// An alert the peer ended the handshake or session with, in the words of the side that
/// received it: what the alert means and who can act on it.
pub(crate) fn alert_received(alert: rustls::AlertDescription, client: bool) -> String {
    use rustls::AlertDescription as A;
    let name = alert_name(alert);
    match alert {
        A::CertificateExpired if !client => format!(
            "the client refused this server's certificate as expired or not yet valid (alert \
             {name}): renew it (or check this host's clock)"
        ),
        A::UnknownCA | A::BadCertificate | A::CertificateUnknown | A::DecryptError if !client => {
            format!(
                "the client does not trust this server's certificate (alert {name}): its --ca \
                 must hold the CA that signed it, or its --pin the fingerprint this server \
                 printed at start, and its --server-name a name the certificate carries"
            )
        }
        A::ProtocolVersion => format!(
            "no TLS version or cipher in common (alert {name}); both sides need the same \
             --tls-version"
        ),
        A::NoApplicationProtocol if client => format!(
            "the server speaks none of the ALPN protocols netecho offers (\"netecho\"; alert \
             {name}): it is no netecho server, or it wants its own ALPN (h2, http/1.1), which \
             netecho cannot offer"
        ),
        A::NoApplicationProtocol => format!("{NO_ALPN_FROM_CLIENT} (alert {name})"),
        _ => format!("the peer ended the TLS session: alert {name}"),
    }
}

/// An alert's name as RFC 8446 spells it (certificate_expired).
fn alert_name(alert: rustls::AlertDescription) -> String {
    let mut name = String::new();
    for c in format!("{alert:?}").chars() {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// A certificate for other names than `expected`: which names it carries, and the flag
/// that asks for one of them.
fn for_another_name(expected: &str, presented: &[String]) -> String {
    let names = cert::presented_names(presented);
    match names.first() {
        Some(first) => format!(
            "the server's certificate is for {}, not {expected}; give --server-name {first}, \
             or --pin",
            names.join(", ")
        ),
        None => format!(
            "the server's certificate names no host or address (no subjectAltName), so it is \
             for no {expected}; give it one that names the server, or --pin it"
        ),
    }
}
