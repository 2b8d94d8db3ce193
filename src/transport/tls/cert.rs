//! Certificates and the rustls configurations built from them, shared by TLS over streams
//! and by QUIC: the server's certificate (PEM files, or a self-signed one made at start),
//! its SHA-256 fingerprint, and how a client decides to trust a server (the system's roots,
//! a CA file, a pinned fingerprint, or nothing at all when asked to be insecure).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The application protocol both ends name in the handshake (ALPN).
pub(crate) const ALPN: &[u8] = b"netecho";

/// The TLS version a connection is limited to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TlsVersion {
    /// TLS 1.2 (RFC 5246): for peers that have no 1.3, and to see the older handshake.
    V12,
    /// TLS 1.3 (RFC 8446): one round trip, everything after the hellos encrypted.
    #[default]
    V13,
}

impl TlsVersion {
    fn rustls(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::V12 => &V12,
            TlsVersion::V13 => &V13,
        }
    }
}

/// A certificate's SHA-256 fingerprint: the digest of its DER bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub(crate) fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// A pin as a user copies it: 64 hex digits, with or without colons, in any case
    /// (`openssl x509 -fingerprint -sha256` prints `AB:CD:...`).
    pub(crate) fn parse(given: &str) -> Result<Fingerprint, String> {
        let given = given.trim();
        if given.starts_with("sha256//") {
            return Err(format!(
                "{given:?} looks like curl's --pinnedpubkey (base64 of the public key's \
                 SHA-256); --pin takes the certificate's SHA-256 in hex, as `openssl x509 \
                 -noout -fingerprint -sha256 -in cert.pem` prints it"
            ));
        }
        // openssl prints "sha256 Fingerprint=AB:CD:...".
        let text = given
            .split_once('=')
            .map_or(given, |(_, after)| after)
            .trim();
        let hex: String = text.chars().filter(|&c| c != ':').collect();
        let bad = || {
            format!(
                "{given:?} is not a SHA-256 fingerprint: 64 hex digits, colons allowed, as \
                 `serve --tls` or `openssl x509 -fingerprint -sha256` print it"
            )
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }

    /// The 64 hex digits without colons, as `--pin` takes them too: 31 columns fewer than
    /// [`Display`](fmt::Display)'s, so that `--pin` with them fits a line of 80 columns.
    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02X}")).collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What `--tls` and its flags ask, as plain values cli.rs builds.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsConfig {
    /// The server's certificate chain (PEM); with neither it nor `key`, a self-signed one.
    pub cert: Option<PathBuf>,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Trust the CAs in this PEM file instead of the system's.
    pub ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this fingerprint.
    pub pin: Option<Fingerprint>,
    /// Trust any certificate (the handshake still encrypts, but anyone can be the server).
    pub insecure: bool,
    pub version: TlsVersion,
    /// The name the server's certificate must carry [default: the host connected to].
    pub server_name: Option<String>,
}

/// A server's rustls configuration and what `serve` says about its certificate.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The SHA-256 fingerprint of the certificate the server presents.
    pub fingerprint: Fingerprint,
    /// Whether the certificate was made at start (self-signed), so clients need `--pin`.
    pub made: bool,
}

/// The crypto every netecho TLS and QUIC endpoint uses (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's configuration: the certificate of `--cert`/`--key`, or a self-signed one
/// for `names` (the names and addresses the server listens on). A --cert that does not name
/// `served` (the host or address served, not a wildcard) is warned about.
pub(crate) fn server_config(
    tls: &TlsConfig,
    names: &[String],
    served: Option<&str>,
) -> Result<ServerTls> {
    let (chain, key, made) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?, false),
        (None, None) => {
            let (cert, key) = self_signed(names)?;
            (vec![cert], key, true)
        }
        _ => bail!("a server certificate needs both --cert FILE and --key FILE"),
    };
    let fingerprint = Fingerprint::of(&chain[0]);
    if let Some(warning) = out_of_date(&chain[0], UnixTime::now().as_secs()) {
        tracing::warn!("{warning}");
    }
    if let Some(served) = served.filter(|_| !made)
        && let Some(warning) = for_other_names(&chain[0], served)
    {
        tracing::warn!("{warning}");
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(tls.version.rustls())
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not go together (--cert, --key)")?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.cert_resolver = Arc::new(NotingAlpn(Arc::clone(&config.cert_resolver)));
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
        made,
    })
}

std::thread_local! {
    /// The ALPN protocols the ClientHello handled last on this thread offered, shown.
    static OFFERED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A server's certificate resolver that notes the ALPN protocols a client offers: rustls
/// asks it before it checks ALPN, on the thread that handles the ClientHello, so a refusal
/// for ALPN ([`offered_alpn`], asked on the same thread) can name them.
#[derive(Debug)]
struct NotingAlpn(Arc<dyn rustls::server::ResolvesServerCert>);

impl rustls::server::ResolvesServerCert for NotingAlpn {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        // Bounded: at most 8 names of at most 32 bytes each, escaped.
        let offered = hello.alpn().map(|names| {
            let shown: Vec<String> = names
                .take(8)
                .map(|n| {
                    let n = String::from_utf8_lossy(&n[..n.len().min(32)]).into_owned();
                    crate::wrap::printable(&n).into_owned()
                })
                .collect();
            shown.join(", ")
        });
        OFFERED.with(|o| *o.borrow_mut() = offered);
        self.0.resolve(hello)
    }
}

/// The ALPN protocols of the ClientHello this thread handled last, as shown ("h2, http/1.1"),
/// taken; None when it offered none.
pub(crate) fn offered_alpn() -> Option<String> {
    OFFERED.with(|o| o.borrow_mut().take())
}

/// A self-signed certificate made at start for a server on `ip`, as `serve` makes one when
/// it is given no --cert: what the lab server's secure echo ports and a QUIC server present.
pub(crate) fn made_for(ip: std::net::IpAddr) -> Result<ServerTls> {
    server_config(&TlsConfig::default(), &names_for(Some(ip)), None)
}

/// The client's configuration: whom it trusts, as `verifier` (of [`verifier`]) says, its
/// refusals worded by a [`Witness`].
pub(crate) fn client_config(
    tls: &TlsConfig,
    verifier: &Arc<dyn ServerCertVerifier>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(tls.version.rustls())
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Witness::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// How a client decides to trust a server, as `tls` says: a pin, nothing (--insecure), or
/// the CAs of --ca (else the system's).
pub(crate) fn verifier(tls: &TlsConfig) -> Result<Arc<dyn ServerCertVerifier>> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    if tls.pin.is_some() || tls.insecure {
        if tls.pin.is_none() {
            tracing::warn!(
                "--insecure: the server's certificate is not checked; the connection is \
                 encrypted, but to whoever answers"
            );
        }
        return Ok(Arc::new(Pinned {
            pin: tls.pin,
            algorithms,
        }));
    }
    let roots = Arc::new(roots(tls.ca.as_deref())?);
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .context("the CA certificates")?;
    Ok(webpki)
}

/// A server certificate no CA of the client's signed.
#[derive(Debug)]
struct Untrusted {
    seen: Fingerprint,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's certificate (SHA-256 {seen}) is not signed by a CA this client \
             trusts; give --ca FILE, or --pin {seen} if that is the fingerprint the server \
             printed at start",
            seen = self.seen
        )
    }
}

impl std::error::Error for Untrusted {}

/// Another verifier, whose refusal of a certificate no CA signed shows its fingerprint
/// (which a student can check and pin), and is kept for the one connection it checks:
/// quinn hands a client only the text of a TLS error, netecho words it from the error.
#[derive(Debug)]
pub(crate) struct Witness {
    inner: Arc<dyn ServerCertVerifier>,
    refusal: std::sync::Mutex<Option<rustls::Error>>,
}

impl Witness {
    fn new(inner: &Arc<dyn ServerCertVerifier>) -> Arc<Witness> {
        Arc::new(Witness {
            inner: Arc::clone(inner),
            refusal: std::sync::Mutex::new(None),
        })
    }

    /// A copy of `config` whose certificate checks `inner` makes and the witness keeps.
    pub(crate) fn around(
        config: &rustls::ClientConfig,
        inner: &Arc<dyn ServerCertVerifier>,
    ) -> (Arc<rustls::ClientConfig>, Arc<Witness>) {
        let witness = Witness::new(inner);
        let mut config = config.clone();
        config.dangerous().set_certificate_verifier(witness.clone());
        (Arc::new(config), witness)
    }

    /// The error the certificate was refused with, if it was.
    pub(crate) fn refusal(&self) -> Option<rustls::Error> {
        self.refusal.lock().ok()?.clone()
    }
}

impl ServerCertVerifier for Witness {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let verdict = match verdict {
            Err(rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature)) => {
                let seen = Fingerprint::of(end_entity);
                let untrusted = rustls::OtherError(Arc::new(Untrusted { seen }));
                Err(rustls::Error::InvalidCertificate(C::Other(untrusted)))
            }
            other => other,
        };
        if let (Err(e), Ok(mut refusal)) = (&verdict, self.refusal.lock()) {
            *refusal = Some(e.clone());
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name a client asks the server's certificate to carry: `--server-name`, else the
/// host or address connected to (a Unix socket has neither: "localhost").
pub(crate) fn server_name(tls: &TlsConfig, host: Option<&str>) -> Result<ServerName<'static>> {
    let name = tls
        .server_name
        .as_deref()
        .or(host)
        .unwrap_or("localhost")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = name.split('%').next().unwrap_or(name);
    ServerName::try_from(name.to_string())
        .map_err(|_| anyhow::anyhow!("{name:?} is no host name or address a certificate can carry"))
}

/// Every certificate of a PEM file.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{}: no certificate in it (a PEM file has -----BEGIN CERTIFICATE----- blocks)",
            path.display()
        );
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_pem(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{}: no private key read from it ({e}); --key takes a PEM key (PKCS#8, RSA or EC)",
            path.display()
        )
    })
}

/// The most a PEM file of keys or certificates is read: a chain of a few certificates
/// is a few KiB, a CA bundle of the whole system about 200 KiB.
const MAX_PEM: u64 = 4 << 20;

/// The bytes of the PEM file at `path`: a regular file or a FIFO (a shell's `<(...)`), at
/// most [`MAX_PEM`]. A device (/dev/zero) is never read, and the open does not wait for a
/// FIFO's writer. A key that other users may read is said once: it is the server's identity.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("{shown}: cannot read the {what}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{shown}: cannot read the {what}"))?;
    let kind = meta.file_type();
    let other = match () {
        _ if kind.is_file() => None,
        // `--key <(pass show key)`: read as it comes, within the same bound.
        _ if kind.is_fifo() => None,
        _ if kind.is_dir() => Some("a directory"),
        _ if kind.is_socket() => Some("a socket"),
        _ => Some("a device"),
    };
    if let Some(other) = other {
        bail!("{shown} is {other}, not a PEM file; give the file that holds the {what}");
    }
    if kind.is_fifo() {
        // Opened without waiting for a writer; its reads wait for what the writer sends.
        let flags = nix::fcntl::OFlag::empty();
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))
            .with_context(|| format!("{shown}: cannot read the {what}"))?;
    }
    if meta.len() > MAX_PEM {
        bail!(
            "{shown}: {} bytes, more than a PEM {what} file holds ({} MiB at most); is it \
             the right file?",
            meta.len(),
            MAX_PEM >> 20
        );
    }
    if what == "key" && meta.permissions().mode() & 0o044 != 0 {
        tracing::warn!(
            "{shown} may be read by other users (mode {:04o}): anyone who has it can be this \
             server; chmod 600 it",
            meta.permissions().mode() & 0o7777
        );
    }
    let mut pem = Vec::new();
    file.take(MAX_PEM + 1)
        .read_to_end(&mut pem)
        .with_context(|| format!("{shown}: cannot read the {what}"))?;
    if pem.len() as u64 > MAX_PEM {
        bail!(
            "{shown}: more than a PEM {what} file holds ({} MiB at most); is it the right file?",
            MAX_PEM >> 20
        );
    }
    Ok(pem)
}

/// A self-signed certificate for `names`, made now, valid for a year.
pub(crate) fn self_signed(
    names: &[String],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let mut names: Vec<String> = names.to_vec();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let mut params = rcgen::CertificateParams::new(names.clone()).context("certificate names")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("netecho {}", names[0]));
    let key = rcgen::KeyPair::generate().context("making a key")?;
    let cert = params.self_signed(&key).context("making a certificate")?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((cert.der().clone(), key))
}

/// The names a self-signed certificate carries for a server on `host` (an address or a
/// name; None for a Unix socket): the host itself, and for a wildcard or loopback address
/// the loopback names a client on this machine would use.
pub(crate) fn names_for(host: Option<std::net::IpAddr>) -> Vec<String> {
    let mut names = Vec::new();
    match host {
        Some(ip) if !ip.is_unspecified() && !ip.is_loopback() => names.push(ip.to_string()),
        _ => {
            names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
            if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                let host = host.trim();
                if !host.is_empty() && host != "localhost" {
                    names.push(host.to_string());
                }
            }
        }
    }
    names
}

/// The roots a client trusts: the CAs of `ca`, else the system's (/etc/ssl/certs).
fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = match ca {
        Some(path) => load_certs(path)?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        match ca {
            Some(path) => bail!("{}: no usable CA certificate in it", path.display()),
            None => bail!(
                "no CA certificates found on this system (/etc/ssl/certs); give --ca FILE, \
                 or --pin SHA256 with the fingerprint the server printed"
            ),
        }
    }
    Ok(roots)
}

/// Trusts the one certificate whose fingerprint is `pin` (or, with no pin, any
/// certificate: `--insecure`); the handshake's signature is checked either way, so the
/// server must hold the certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        match self.pin {
            // As a certificate error, so the server hears why (a bad_certificate alert).
            Some(pin) if pin != seen => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    seen,
                    pin,
                }))),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A server certificate other than the pinned one.
#[derive(Debug)]
struct PinMismatch {
    seen: Fingerprint,
    pin: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's certificate has fingerprint {}, not the pinned {} (another \
             server, or a new certificate: serve prints its fingerprint at start)",
            self.seen, self.pin
        )
    }
}

impl std::error::Error for PinMismatch {}

/// A certificate's subject as `CN=..., O=...`: the attributes a reader recognises, read
/// from the DER without a full X.509 parser (None when the bytes are not a certificate).
pub(crate) fn subject(der: &[u8]) -> Option<String> {
    let (cert, _) = der_item(der, 0x30)?;
    let (tbs, _) = der_item(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_any(rest)?.1; // [0] version
    }
    for _ in 0..4 {
        rest = der_any(rest)?.1; // serial, signature algorithm, issuer, validity
    }
    let (name, _) = der_item(rest, 0x30)?;
    let mut parts = Vec::new();
    let mut sets = name;
    while !sets.is_empty() {
        let (set, after) = der_item(sets, 0x31)?;
        sets = after;
        let (pair, _) = der_item(set, 0x30)?;
        let (oid, value) = der_item(pair, 0x06)?;
        let (text, _) = der_any(value)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            _ => continue,
        };
        let text = crate::wrap::printable(&String::from_utf8_lossy(text)).into_owned();
        parts.push(format!("{label}={text}"));
    }
    Some(parts.join(", "))
}

/// A certificate's validity: its notBefore and notAfter in seconds since 1970 (None when
/// the bytes are not a certificate).
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (cert, _) = der_item(der, 0x30)?;
    let (tbs, _) = der_item(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_any(rest)?.1; // [0] version
    }
    for _ in 0..3 {
        rest = der_any(rest)?.1; // serial, signature algorithm, issuer
    }
    let (times, _) = der_item(rest, 0x30)?;
    let (from, after) = der_time(times)?;
    let (until, _) = der_time(after)?;
    Some((from, until))
}

/// A UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), in seconds since 1970,
/// and the bytes after it.
fn der_time(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let tag = *bytes.first()?;
    let (text, after) = der_any(bytes)?;
    let digits = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: u64 = digits.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        0x18 => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |at: usize| -> Option<u64> { rest.get(at..at + 2)?.parse().ok() };
    let days = days_from_civil(year, field(0)?, field(2)?)?;
    Some((
        days * 86400 + field(4)? * 3600 + field(6)? * 60 + field(8)?,
        after,
    ))
}

/// Days from 1970-01-01 to a date of the Gregorian calendar (H. Hinnant's algorithm, as
/// [`crate::report::meta::utc`] goes the other way).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day.checked_sub(1)?;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146097 + doe).checked_sub(719468)
}

/// Seconds since 1970 as the date they fall on, YYYY-MM-DD (UTC).
pub(crate) fn date(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    crate::report::meta::utc(time)[..10].to_string()
}

/// A warning for a server's certificate that clients checking it refuse whatever they do:
/// one expired, or not valid yet (None when it is valid now, or its dates are unreadable).
pub(crate) fn out_of_date(der: &[u8], now: u64) -> Option<String> {
    let (from, until) = validity(der)?;
    let checking = "clients checking it (--ca, the system's CAs) will refuse it";
    if now > until {
        Some(format!(
            "the certificate of --cert expired on {}: {checking}; renew it (clients that \
             --pin it accept it)",
            date(until)
        ))
    } else if now < from {
        Some(format!(
            "the certificate of --cert is not valid before {}: {checking}; check this host's \
             clock, or make it anew (clients that --pin it accept it)",
            date(from)
        ))
    } else {
        None
    }
}

/// A warning for a server's certificate that does not name `served`, the host or address
/// it serves: a client that connects by it and checks names refuses the certificate.
pub(crate) fn for_other_names(der: &CertificateDer<'_>, served: &str) -> Option<String> {
    let name = ServerName::try_from(served.to_string()).ok()?;
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    let presented = match cert.verify_is_valid_for_subject_name(&name) {
        Err(webpki::Error::CertNotValidForName(context)) => context.presented,
        _ => return None,
    };
    let names = presented_names(&presented);
    Some(match names.first() {
        Some(first) => format!(
            "the certificate of --cert is for {}, not {served}: a client connecting to \
             {served} refuses it unless it gives --server-name {first} (or --pin)",
            names.join(", ")
        ),
        None => format!(
            "the certificate of --cert names no host or address (no subjectAltName): a client \
             checking names refuses it at {served}; make one that names it (or clients --pin it)"
        ),
    })
}

/// The names a certificate presents, as webpki writes them (`DnsName("localhost")`,
/// `IpAddress(127.0.0.1)`), bare and printable, addresses as usually written.
pub(crate) fn presented_names(presented: &[String]) -> Vec<String> {
    presented
        .iter()
        .map(|n| {
            let inner = n.split_once('(').map_or(n.as_str(), |(_, rest)| rest);
            let inner = inner.trim_end_matches(')').trim_matches('"');
            // Its IPv6 addresses are not in their short form (0::1).
            match inner.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => crate::wrap::printable(inner).into_owned(),
            }
        })
        .collect()
}

/// One DER item of tag `tag`: its contents and the bytes after it.
fn der_item(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    (bytes.first() == Some(&tag)).then_some(())?;
    der_any(bytes)
}

/// One DER item of any tag: its contents and the bytes after it.
fn der_any(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 {
            return None;
        }
        let len = bytes
            .get(2..2 + count)?
            .iter()
            .fold(0usize, |n, &b| n << 8 | b as usize);
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    Some((bytes.get(header..end)?, &bytes[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_read_with_or_without_colons_in_any_case() {
        let (cert, _) = self_signed(&["localhost".into()]).unwrap();
        let fp = Fingerprint::of(&cert);
        let shown = fp.to_string();
        assert_eq!(shown.len(), 64 + 31);
        for text in [
            shown.clone(),
            shown.to_lowercase(),
            shown.replace(':', ""),
            format!("sha256 Fingerprint={shown}"),
        ] {
            assert_eq!(Fingerprint::parse(&text).unwrap(), fp, "{text}");
        }
        assert!(Fingerprint::parse("AB:CD").is_err());
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
        // curl's public-key pin is quoted back whole, and told apart.
        let curl = "sha256//yTqrAC/bNhbQ01SSCOhFuXHQaT0NVzozhB3qgGuyRi0=";
        let said = Fingerprint::parse(curl).unwrap_err();
        assert!(
            said.contains(curl) && said.contains("--pinnedpubkey"),
            "{said}"
        );
    }

    #[test]
    fn a_made_certificate_names_its_subject() {
        let (cert, _) = self_signed(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert_eq!(subject(&cert).unwrap(), "CN=netecho 127.0.0.1");
        assert_eq!(subject(b"\x30\x03abc"), None);
    }

    #[test]
    fn a_certificate_is_out_of_date_before_and_after_its_validity_only() {
        let (cert, _) = self_signed(&["localhost".into()]).unwrap();
        let (from, until) = validity(&cert).unwrap();
        assert!(from < until, "{from} {until}");
        assert_eq!(out_of_date(&cert, from + 1), None);
        assert!(
            out_of_date(&cert, until + 1)
                .unwrap()
                .contains("expired on")
        );
        assert!(
            out_of_date(&cert, from - 1)
                .unwrap()
                .contains("not valid before")
        );
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1580428800), "2020-01-31");
        assert_eq!(date(951782400), "2000-02-29");
        assert_eq!(days_from_civil(2020, 1, 31), Some(1580428800 / 86400));
    }
}
